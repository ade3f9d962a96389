"""nerloop/report"""
