"""Every config composes; every model config instantiates; data configs fail helpfully."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate

from prizenet.models import model_inputs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_with(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_each_model_yaml_has_a_model_file():
    for name in names("model"):  # conf/model/<name>.yaml <-> prizenet/models/<name>.py
        assert (ROOT / "prizenet" / "models" / f"{name}.py").is_file(), name


@pytest.mark.parametrize("data", names("data"))
@pytest.mark.parametrize("model", names("model"))
def test_every_data_and_model_composes(data, model):
    cfg = compose_with(f"data={data}", f"model={model}")
    assert cfg.data._target_.startswith("prizenet.data.")
    assert cfg.model._target_.startswith(f"prizenet.models.{model}.")


@pytest.mark.parametrize("model", names("model"))
def test_every_model_instantiates_from_its_yaml(model, synthetic):
    from prizenet.data import load_prize

    data = load_prize(synthetic)
    cfg = compose_with(f"model={model}")
    m = instantiate(cfg.model, **model_inputs(get_class(cfg.model._target_), data, data.fit_rows(False)))
    assert sum(t.numel() for t in m.state_dict().values()) > 0  # parameters, or a sampler's buffers


@pytest.mark.parametrize("experiment", names("experiment"))
def test_every_experiment_composes(experiment):
    cfg = compose_with(f"experiment={experiment}")
    assert cfg.model and cfg.data and cfg.trainer


@pytest.mark.parametrize("search", names("hparams_search"))
def test_every_hparams_search_composes(search):
    cfg = compose_with(f"hparams_search={search}")
    assert cfg.hydra.sweeper.direction == "minimize" and cfg.hydra.sweeper.params


def test_movielens_without_files_or_network_says_where_to_put_them(tmp_path):
    cfg = compose_with("data=ml-1m", f"paths.data={tmp_path}", "data.download=false")
    with pytest.raises(Exception, match=r"ml-1m not found: expected .*ml-1m/ with one of ratings.csv"):
        instantiate(cfg.data)


def test_netflix_without_files_lists_the_layout(tmp_path):
    cfg = compose_with("data=netflix", f"data.root={tmp_path}")
    with pytest.raises(Exception, match="training_set"):
        instantiate(cfg.data)


def test_csv_config_reads_a_named_column_file(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 3000
    pd.DataFrame({"uid": rng.integers(0, 100, n), "mid": rng.integers(0, 50, n), "stars": rng.integers(1, 6, n),
                  "ts": rng.integers(1e9, 1.1e9, n)}).drop_duplicates(["uid", "mid"]).to_csv(tmp_path / "r.csv", index=False)
    cfg = compose_with("data=csv", f"data.path={tmp_path / 'r.csv'}", "data.columns.user_col=uid",
                       "data.columns.item_col=mid", "data.columns.rating_col=stars", "data.columns.timestamp_col=ts")
    data = instantiate(cfg.data)
    assert data.n_users <= 100 and len(data.probe_rows) > 0 and len(data.qual_user) > 0
