"""MobileNet v2, v3 and EdgeTPU: one table-driven builder (`mobilenet.py`)
fed by the tables of `mobilenet_v2.py` and `mobilenet_v3.py`, built from the
blocks of `conv_blocks.py`.
"""
