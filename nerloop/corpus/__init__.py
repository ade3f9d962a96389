"""nerloop/corpus"""
