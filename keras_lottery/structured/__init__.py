"""Structured tickets: whole neurons, filters, heads, N:M and block patterns.

`unit_groups` finds which units must go together (a unit's producer and
every reader, across residual additions and inside composite layers),
`structures` names what a search prunes and plans it on a model,
`unit_masks` turns unit scores into masks (pure functions), `shrink`
removes pruned units for real, and `early_bird` finds tickets early by mask
distance.
"""
