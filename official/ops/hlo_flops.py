"""Matmul FLOPs of a compiled XLA computation, read off its optimized HLO.

A complexity claim ("O(L sqrt L)") is about the work a kernel does, not its
wall time: on a CPU the achieved GFLOP/s of small tiles rises with size, so a
time slope can sit well below the work's slope (see the Combiner rows of
official/attention/README.md). `dot_flops(hlo_text)` sums 2 * |output| * K
over every `dot` instruction, K the product of its contracted dimensions;
`function_dot_flops(fn, *args)` compiles `fn` with XLA and reads its HLO.

A `dot` inside a `while` body is counted once, not once per iteration: use it
on loop-free computations (`function_dot_flops` raises if a loop holds one).
"""

import re

_SHAPE = re.compile(r"%([\w.\-]+) = [a-z]+\d*\[([\d,]*)\]")
_DOT = re.compile(
    r"= [a-z]+\d*\[([\d,]*)\]\S* dot\(%([\w.\-]+), %([\w.\-]+)\)(.*)"
)
_CONTRACT = re.compile(r"lhs_contracting_dims=\{([\d,]*)\}")


def _dims(text):
    return [int(x) for x in text.split(",")] if text else []


def dot_flops(hlo_text):
    """Sum of 2 * prod(output shape) * prod(contracted lhs dims) over dots."""
    shapes = {name: _dims(d) for name, d in _SHAPE.findall(hlo_text)}
    total = 0
    for out, lhs, _, rest in _DOT.findall(hlo_text):
        if lhs not in shapes:
            raise ValueError(f"hlo_flops: no shape for dot operand %{lhs}.")
        contracted = 1
        match = _CONTRACT.search(rest)
        for i in _dims(match.group(1) if match else ""):
            contracted *= shapes[lhs][i]
        size = 1
        for d in _dims(out):
            size *= d
        total += 2 * size * contracted
    return total


_COMPUTATION = re.compile(
    r"^(?:ENTRY )?%([\w.\-]+) \(.*?^\}$", re.MULTILINE | re.DOTALL
)
_CALLED = re.compile(r"(?:calls|to_apply|body|condition)=%([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")


def _called(text):
    names = _CALLED.findall(text)
    for group in _BRANCHES.findall(text):
        names += [n.strip().lstrip("%") for n in group.split(",")]
    return names


def _computations_with_dots_in_loops(hlo_text):
    """Loop bodies from which a `dot` is reachable (directly or through the
    fusions and calls they make)."""
    computations = {
        m.group(1): m.group(0) for m in _COMPUTATION.finditer(hlo_text)
    }
    found = []
    for body in sorted(set(re.findall(r"body=%([\w.\-]+)", hlo_text))):
        seen, todo = set(), [body]
        while todo:
            name = todo.pop()
            if name in seen or name not in computations:
                continue
            seen.add(name)
            if " dot(" in computations[name]:
                found.append(body)
                break
            todo += _called(computations[name])
    return found


def function_dot_flops(fn, *args):
    """Dot FLOPs of `tf.function(fn, jit_compile=True)` on `args`."""
    import tensorflow as tf

    compiled = tf.function(fn, jit_compile=True)
    hlo = compiled.experimental_get_compiler_ir(*args)(stage="optimized_hlo")
    looped = _computations_with_dots_in_loops(hlo)
    if looped:
        raise ValueError(
            "hlo_flops: dots inside while loops would be counted once per "
            f"loop, not per iteration (loop bodies {looped})."
        )
    return dot_flops(hlo)
