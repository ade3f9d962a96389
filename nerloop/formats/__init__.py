"""nerloop/formats"""
