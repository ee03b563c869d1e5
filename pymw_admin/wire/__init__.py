"""The wire format, the bottom layer: task files and result records (``encoding``) and the
persistent worker's length-prefixed frames (``framing``). Imports nothing else of pymw_admin but
``errors``.
"""
