"""Training and measuring: resume inside an architecture."""

import json

import jax
import jax.numpy as jnp
import pytest

from ntkjax import data, tracking
from ntkjax.spaces import api, nb201


class Interrupted(Exception):
  pass


@pytest.mark.slow  # 85-100 s of compilation on 2 cores
def test_track_resumes_inside_an_architecture(tmp_path):
  ds = data.load("digits16")
  ds = ds._replace(images=ds.images[:64], labels=ds.labels[:64])
  archs = [nb201.encode(o) for o in nb201.sample(jax.random.key(1), 2)]
  calls = {"measure": 0}

  def measure(variables, inst):
    calls["measure"] += 1
    if calls.get("crash") and calls["measure"] == 3:  # during epoch 2 of the first arch
      raise Interrupted
    return {"w": jnp.sum(jax.tree.leaves(variables["params"])[0])}
  kw = dict(space=api.NB201Space(C=4, N=1), init_key=jax.random.key(0), train_data=ds, ts=[0, 1, 2, 3],
            make_measure=lambda net: measure, names=["w"], key=jax.random.key(2), batch_size=32)
  ref = tracking.track(tmp_path / "ref" / "r.csv", archs, **kw)
  assert [r.arch for r in ref] == archs and ref[0].loss[3] > 0 and ref[0].series("w", [0, 1]) == [
      ref[0].values[("w", 0)], ref[0].values[("w", 1)]]

  calls.update(measure=0, crash=True)
  with pytest.raises(Interrupted):
    tracking.track(tmp_path / "run" / "r.csv", archs, **kw)
  saved = json.loads((tmp_path / "run" / "checkpoints" / "00000" / "measured.json").read_text())
  assert sorted(saved) == ["0", "1"]
  calls.update(measure=0, crash=False)
  got = tracking.track(tmp_path / "run" / "r.csv", archs, **kw)
  for a, b in zip(got, ref):
    for t in (0, 1, 2, 3):
      assert a.values[("w", t)] == pytest.approx(b.values[("w", t)], rel=1e-6)
    assert a.loss[3] == pytest.approx(b.loss[3], rel=1e-6)
  # the first arch resumed after epoch 1 (2 fresh measures: t=2, 3 plus a cached t=0)
  assert calls["measure"] == 1 + 2 + 4 - 1
  assert not (tmp_path / "run" / "checkpoints" / "00000").exists()
