"""``generator=`` has one meaning in the whole library (``cb.utils.as_generator``), and a function
that builds a model seeds the model's initial weights from it (``cb.utils.seeded_init``).

The first test reads the library's source: a public function that takes ``generator`` must turn it
into a stream through ``as_generator`` / ``seeded_init`` or hand it to another library function,
never straight to a ``torch`` sampler (which rejects an int and reads ``None`` differently). The
others check the meaning on the functions this rule caught, and on the model builders.
"""
import ast
import pathlib

import pytest
import torch

import causalbook_lib as cb

LIB = pathlib.Path(cb.__file__).parent


def _public_functions(tree):
    """Module-level functions and methods of module-level classes (nested helpers excluded)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    yield f"{node.name}.{item.name}", item


def test_no_public_function_hands_generator_straight_to_torch():
    offenders = []
    for path in sorted(LIB.rglob("*.py")):
        text = path.read_text()
        for name, fn in _public_functions(ast.parse(text)):
            args = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
            if "generator" not in args or name.split(".")[-1].startswith("_"):
                continue
            body = ast.get_source_segment(text, fn)
            if "as_generator(generator" in body or "seeded_init(generator" in body:
                continue
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and ast.unparse(call.func).startswith("torch."):
                    if any(kw.arg == "generator" and ast.unparse(kw.value) == "generator" for kw in call.keywords):
                        offenders.append(f"{path.relative_to(LIB)}:{fn.lineno} {name} -> {ast.unparse(call.func)}")
    assert not offenders, "generator= passed to torch without cb.utils.as_generator:\n" + "\n".join(offenders)


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("draw", [
    lambda g: cb.scm.SCM({"x": cb.scm.additive((), lambda pa: 0.0, cb.scm.normal_noise())}).sample(5, g)["x"],
    lambda g: cb.datasets.sample_face_attributes(6, g),
    lambda g: cb.datasets.render_faces(torch.zeros(2, 5), g),
    lambda g: cb.datasets.sample_loan_data(4, g).income,
    lambda g: cb.causalgen.CausalController.from_tables(cb.datasets.FACE_PARENTS, cb.datasets.FACE_CPTS).sample(6, g),
    lambda g: cb.vae.ConditionalVAE(4, 0, 2, 8).elbo(torch.rand(3, 4), generator=g),
    lambda g: cb.infoflow.information_flow(lambda z: z, lambda x: torch.softmax(x, -1), 1, 1, 4, 3, generator=g),
    lambda g: cb.infoflow.common_random_probabilities(torch.eye(2), 0.5, lambda x: torch.softmax(x, -1),
                                                      torch.zeros(3, 2), generator=g),
], ids=["scm", "face-attributes", "faces", "loan", "controller", "elbo", "information-flow", "common-random"])
def test_an_int_is_a_seed_and_a_bad_generator_is_a_value_error(draw):
    with cb.utils.seeded_init(0):  # the models inside the lambdas, the same in every call
        a = draw(7)
    with cb.utils.seeded_init(0):
        b = draw(7)
    with cb.utils.seeded_init(0):
        c = draw(torch.Generator(device=torch.empty(0).device).manual_seed(7))
    a, b, c = (torch.as_tensor(v) for v in (a, b, c))
    assert torch.equal(a, b) and torch.equal(a, c)      # an int seeds a new stream, like manual_seed
    with pytest.raises(ValueError, match="generator must be None, a non-negative int or a torch.Generator"):
        draw(1.5)


def _digits(device):
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.zeros(20, 64), torch.ones(20, 64)]) * 0.8 + 0.1 * torch.rand(40, 64, generator=g)
    return x.to(device), torch.cat([torch.zeros(20), torch.ones(20)]).long().to(device)


@pytest.mark.parametrize("build", [
    lambda x, y, g: cb.models.train_mlp_classifier(x, y, hidden=8, epochs=3, generator=g),
    lambda x, y, g: cb.explanations.train_digit_classifier(x, y, 2, steps=5, dropout=0.5, generator=g),
    lambda x, y, g: cb.vae.train_conditional_vae(x, y, n_classes=2, n_latent=2, steps=5, hidden=8, generator=g).model,
], ids=["mlp", "digit-cnn", "conditional-vae"])
def test_a_seed_fixes_the_whole_model_and_leaves_the_global_stream_alone(build, device):
    x, y = _digits(device)
    torch.manual_seed(1)
    before = torch.random.get_rng_state()
    m1 = build(x, y, 3)
    assert torch.equal(torch.random.get_rng_state(), before)   # the caller's stream did not move
    torch.manual_seed(2)                                        # another global state: the same model
    m2 = build(x, y, 3)
    m3 = build(x, y, 4)
    p1, p2, p3 = (list(m.parameters()) for m in (m1, m2, m3))
    assert _same(p1, p2)
    assert not _same(p1, p3)
    assert all(p.device.type == device.type for p in p1)


def test_no_public_function_names_its_randomness_or_chunks_otherwise():
    """Randomness is ``generator`` and batching ``chunk_size`` everywhere (``seeds=`` lists of
    per-model seeds, as in ``cb.irm``, are a different thing and allowed)."""
    import importlib
    import inspect
    import pkgutil

    forbidden = {"seed", "rng", "random_state", "chunk", "n_chunks"}
    allowed = {("causalbook_lib.utils", "seed_everything")}   # seeding the world is its job
    offenders = []
    for info in pkgutil.walk_packages(cb.__path__, "causalbook_lib."):
        mod = importlib.import_module(info.name)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            members = [(name, obj)] if inspect.isfunction(obj) else (
                [(f"{name}.{k}", v) for k, v in vars(obj).items() if inspect.isfunction(v) and not k.startswith("_")]
                + [(name, obj.__init__)] if inspect.isclass(obj) else [])
            for qual, fn in members:
                bad = forbidden & set(inspect.signature(fn).parameters)
                if bad and (info.name, qual) not in allowed:
                    offenders.append(f"{info.name}.{qual}: {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_seed_from_has_the_meaning_of_as_generator():
    assert cb.utils.seed_from(5) == 5
    g = torch.Generator().manual_seed(0)
    first, second = cb.utils.seed_from(g), cb.utils.seed_from(g)
    assert first != second                                # a Generator gives a draw and advances
    assert cb.utils.seed_from(torch.Generator().manual_seed(0)) == first
    torch.manual_seed(3)
    a = cb.utils.seed_from(None)
    torch.manual_seed(3)
    assert cb.utils.seed_from(None) == a                  # None follows torch's global state
    for bad in (-1, True, 2.0, "1"):
        with pytest.raises(ValueError, match="generator must be None"):
            cb.utils.seed_from(bad)
