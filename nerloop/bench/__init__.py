"""nerloop/bench"""
