"""data_tools"""
