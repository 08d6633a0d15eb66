"""Which of two exact computations of an SVD layer is cheaper, for one forward call.

Only used while the singular values train and U, V are frozen (the SVF setting):

* two convolutions (svf.two_conv): k x k conv to rank r (V), 1 x 1 conv up (U diag(S)). No
  weight gradients are needed: the backward is one pass back through U, one elementwise
  product for dS and, when the input needs a gradient, one pass back through V.
* rebuild: W = U diag(S) V^T once per forward, one dense conv. Its backward needs the
  input gradient and the full weight gradient dW, then projects dW onto S.

Costs are counted in multiply-adds; an elementwise pass over a tensor is charged
ELEMENTWISE_COST per element, because such passes are bound by memory traffic, not
arithmetic. The constant was calibrated on CPU micro-benchmarks of the ResNet-50 convs
(svf/bench_layers.py); the decision only matters near ties (e.g. the 1 x 1 downsample convs,
where both cost about three dense convs).
"""

ELEMENTWISE_COST = 32


def two_conv_cost(positions, groups, rows, rank, cols, input_needs_grad):
    """Multiply-add equivalents of forward + backward of the two-convolution path."""
    down = positions * groups * rank * cols      # x -> rank r (k x k conv with V)
    up = positions * groups * rows * rank         # rank r -> out (1 x 1 conv with U)
    elementwise = positions * groups * rank * ELEMENTWISE_COST  # the product for dS
    return down + 2 * up + (down if input_needs_grad else 0) + elementwise


def rebuild_cost(positions, groups, rows, rank, cols, input_needs_grad):
    """Multiply-add equivalents of forward + backward of the rebuild path."""
    dense = positions * groups * rows * cols
    build_and_project = 2 * groups * rows * rank * cols   # U S V^T, then dW V
    return dense * (3 if input_needs_grad else 2) + build_and_project


def prefer_two_conv(positions, groups, rows, rank, cols, input_needs_grad):
    """True when two convolutions are expected to be at least as fast as rebuilding."""
    args = (positions, groups, rows, rank, cols, input_needs_grad)
    return two_conv_cost(*args) <= rebuild_cost(*args)
