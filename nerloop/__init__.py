"""nerloop"""
