"""Blocks, kernels, training and export shared by the garden's papers.

`official` never imports `garden`: the arrows run garden -> official -> keras/tf.
"""
