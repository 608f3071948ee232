"""What a router was trained on (router_ml.core.provenance): fingerprints it carries, checked with the artifact."""

import numpy as np

from router_ml import load_router
from router_ml.core.provenance import TRAINED_ON_FILE, TrainedOn, fingerprints, trained_on


def test_fingerprints_are_stable_and_lookups_exact():
    prompts = ["What is 2+2?", "Prove it.", "caf\u00e9", "lone \ud800 surrogate"]
    record = TrainedOn.of_prompts(prompts[:2])
    assert fingerprints(prompts).dtype == np.uint64 and len(set(fingerprints(prompts))) == 4
    assert record.contains(prompts).tolist() == [True, True, False, False]
    assert TrainedOn.of_prompts([]).contains(["x"]).tolist() == [False]


def test_a_trained_router_carries_its_training_prompts(trained_router_dir, demo_files):
    import pandas as pd

    router = load_router(trained_router_dir)
    assert TRAINED_ON_FILE in router.manifest["files"]  # hash-checked like every artifact file
    record = trained_on(router)
    prompts = pd.read_csv(demo_files["outcomes"]).drop_duplicates("prompt_id")["prompt"].tolist()
    seen = record.contains(prompts)
    assert len(record) == 240 and seen.sum() == 240  # the 80 % it trained on, not the 20 % it held out
    holdout = pd.read_csv(demo_files["holdout"])["prompt"].unique().tolist()
    assert not record.contains(holdout).any()
