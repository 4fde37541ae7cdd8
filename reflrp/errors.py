"""The one exception type reflrp raises for bad input (importers raise its subclass ``ImportAuditError``, which
lists every construct a model file cannot be imported with)."""


class ReflrpError(ValueError):
    """Bad input: a layer, rule, target, file or argument that cannot be used.

    The message names the layer (type and node name), rule, file or argument, and the problem.  Everything that
    can be checked before computing (arguments, shapes along the graph, rules against layers, targets, files) is
    checked before any kernel runs; the few conditions only the numbers reveal (relevance that overflows at a
    tiny denominator, an argmax region that selects no pixel) are raised where they arise, naming the node.
    """
