"""Survey definitions and answers to them: the plain-data rules the surveys service enforces on
intake and the gateway's participant pages apply while someone answers, so both decide alike.
"""
