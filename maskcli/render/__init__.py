"""Rendering for a terminal: rich tables, the mask grid, SVG, progress bars.

Imported by the commands only when they display something.
"""
