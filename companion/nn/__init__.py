"""From-scratch layers with the contract of ``torch.nn``: same names, arguments, defaults,
parameter and buffer names, and errors."""
