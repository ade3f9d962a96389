"""nerloop/budget"""
