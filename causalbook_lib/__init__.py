"""causalbook_lib: the shared library of *causalbook*, an executable book on causality for deep learning.

Chapters import it as ``import causalbook_lib as cb`` and print ``cb.__version__`` first.
"""
__version__ = "0.1.0"

from . import (  # noqa: E402
    attacks,
    attribution,
    causalgen,
    claims,
    datasets,
    evaluation,
    exercises,
    experts,
    explanations,
    fairness,
    feature_effects,
    gan,
    generative,
    graphs,
    independence,
    infoflow,
    interventions,
    irm,
    l2x,
    models,
    plotting,
    recurrent,
    regressors,
    rim,
    scm,
    shapley,
    utils,
    vae,
    verification,
)

__all__ = [
    "__version__", "attacks", "attribution", "causalgen", "claims", "datasets", "evaluation", "exercises", "experts", "explanations", "fairness", "feature_effects",
    "gan", "generative", "graphs", "independence", "infoflow", "interventions", "irm", "l2x", "models", "plotting", "recurrent",
    "regressors", "rim", "scm", "shapley", "utils", "vae", "verification",
]
