"""Which of two exact computations of an SVD layer to use for one forward call, and what it
keeps for the backward.

Only used while the singular values train and U, V are frozen (the SVF setting):

* two convolutions (svf.two_conv): k x k conv to rank r (V), 1 x 1 conv up (U diag(S)). No
  weight gradients are needed: the backward is one pass back through U, one elementwise
  product for dS and, when the input needs a gradient, one pass back through V. When it keeps
  its input instead of the rank-r activation (keeps_input), the backward recomputes that
  activation: one more pass through V.
* rebuild (svf.rebuild): W = U diag(S) V^T, one dense conv; the backward rebuilds W and needs
  the input gradient and the full weight gradient dW, then projects dW onto S.

Memory comes first: rebuild must keep the input x (dW needs it); two_conv keeps x or the
rank-r activation a = V^T x (keeps_input). When it keeps `a`, which is then smaller than x and
x is kept by no other op, two_conv is used; otherwise both keep x and the cheaper one is used.

Costs are counted in multiply-adds; an elementwise pass over a tensor is charged
ELEMENTWISE_COST per element, because such passes are bound by memory traffic, not
arithmetic. The constant was calibrated on CPU micro-benchmarks of the ResNet-50 convs
(python -m tools.bench_svf_layers); the decision only matters near ties (e.g. the 1 x 1
downsample convs, where both cost about three dense convs).
"""

ELEMENTWISE_COST = 32
_KEEPS_OUTPUT = {}  # autograd node type -> whether it saves its own output


def kept_by_producer(x):
    """True when the op that produced tensor x saves x for its own backward (ReLU and the
    other activations that save their result), so that keeping x again costs no memory."""
    node = x.grad_fn
    if node is None:
        return False
    kind = type(node)
    if kind not in _KEEPS_OUTPUT:
        _KEEPS_OUTPUT[kind] = "_saved_result" in dir(kind)
    return _KEEPS_OUTPUT[kind]


def keeps_input(kept_elsewhere, input_size, projection_size):
    """Whether the two-convolution path keeps its input x for the backward rather than the
    rank-r activation a = V^T x: when another op keeps x anyway (it then costs no memory) or
    when x is not larger than `a` (sizes in elements; x is then likely shared with another
    layer reading the same input)."""
    return kept_elsewhere or input_size <= projection_size


def two_conv_cost(positions, groups, rows, rank, cols, input_needs_grad, keep_input=False):
    """Multiply-add equivalents of forward + backward of the two-convolution path."""
    down = positions * groups * rank * cols      # x -> rank r (k x k conv with V)
    up = positions * groups * rows * rank         # rank r -> out (1 x 1 conv with U)
    elementwise = positions * groups * rank * ELEMENTWISE_COST  # the product for dS
    backward_downs = int(input_needs_grad) + int(keep_input)
    return down * (1 + backward_downs) + 2 * up + elementwise


def rebuild_cost(positions, groups, rows, rank, cols, input_needs_grad):
    """Multiply-add equivalents of forward + backward of the rebuild path."""
    dense = positions * groups * rows * cols
    build_and_project = 3 * groups * rows * rank * cols   # U S V^T twice, then U^T dW V
    return dense * (3 if input_needs_grad else 2) + build_and_project


def prefer_two_conv(positions, groups, rows, rank, cols, input_needs_grad, keep_input,
                    memory_first=True):
    """True when two convolutions keep less memory than rebuilding (keep_input False) and
    memory comes first, or when they are expected to be at least as fast."""
    if memory_first and not keep_input:
        return True
    args = (positions, groups, rows, rank, cols, input_needs_grad)
    return two_conv_cost(*args, keep_input) <= rebuild_cost(*args)
