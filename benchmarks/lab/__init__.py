"""Lab notebooks: one-off experiments behind the committed results in benchmarks/results/.

Not part of the product (excluded from the wheel); each script is run as
`python -m benchmarks.lab.<name>` and is built on the product's own functions.
"""
