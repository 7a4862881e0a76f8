"""Print a fresh set of secrets for .env (docker-compose) or a Kubernetes Secret."""
from shared.embedded import generate_secrets

if __name__ == "__main__":
    for name, value in generate_secrets().items():
        print(f"{name}={value}")
