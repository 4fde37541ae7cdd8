"""The one exception type reflrp raises for bad input."""


class ReflrpError(ValueError):
    """Bad input: a layer, rule, target or argument that cannot be used.

    The message names the layer (type and node name), rule or argument, and the problem.  It is always raised
    before any kernel runs.
    """
