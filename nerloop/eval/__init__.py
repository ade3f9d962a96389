"""nerloop/eval"""
