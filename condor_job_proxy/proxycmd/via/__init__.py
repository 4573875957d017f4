"""The laptop path, ``connect --via``: the laptop's side, the hop to the access point,
the prelude it sends first, and the access point's side.
"""
