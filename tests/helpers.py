"""What several test modules share: small networks and their set-ups,
NB201 archs and NB101 specs, and explicit float64 references. Test modules
import these from here, never from each other; the shared data is the
``shared_data`` fixture's (``tests/conftest.py``)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ntkjax import data, layers
from ntkjax.spaces import nb101, nb201

# ----------------------------------------------------------------------------- NB201

MIXED = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
ARCHS = (MIXED, "|skip_connect~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|skip_connect~2|")


def nb201_setup(variant="benchmark", n=4, arch=MIXED):
  net = nb201.Network(C=4, N=1, variant=variant)
  x = jax.random.normal(jax.random.key(1), (n, 8, 8, 3))
  ops = nb201.decode(arch)
  v = jax.jit(net.init)(jax.random.key(0), x, ops)
  # Non-trivial running stats so eval mode differs from train mode.
  v = {**v, "batch_stats": jax.tree_util.tree_map(lambda a: 0.9 * a + 0.05, v["batch_stats"])}
  return net, v, x, ops


def random_variables(net, *init_args, seed=0):
  """Uniform [0.1, 0.4) values in the shapes of ``net.init(key, *init_args)``,
  traced and not compiled: compiling an init (threefry per leaf) costs more
  than many tests."""
  shapes = jax.eval_shape(net.init, jax.random.key(0), *init_args)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.uniform(0.1, 0.4, s.shape), s.dtype), shapes)


# ----------------------------------------------------------------------------- generic nets

class TinyBNNet(nn.Module):
  """Conv -> BN -> ReLU -> pool -> Dense: a fast stand-in for every
  engine code path (both BN modes, all reductions and implementations)."""

  def couples_samples(self, train):
    return train

  @nn.compact
  def __call__(self, x, train=False):
    x = nn.Conv(3, (3, 3))(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    x = jax.nn.relu(x).mean(axis=(1, 2))
    return nn.Dense(3)(x)


def tiny_net(net=None):
  """``net`` (default TinyBNNet) on 5 images, with running stats away from their init."""
  net = net or TinyBNNet()
  x = jax.random.normal(jax.random.key(1), (5, 6, 6, 2))
  v = jax.jit(net.init)(jax.random.key(0), x)
  v = {**v, "batch_stats": jax.tree_util.tree_map(lambda a: a + 0.3, v["batch_stats"])}
  return net, v, x


def explicit_ntk(net, v, x, bn, reduction, *args):
  """Θ from the explicit Jacobian of the batched network, in float64 (one
  jitted ``jacrev``: eagerly it would compile op by op)."""
  with jax.enable_x64(True):
    v64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), v)
    theta, unravel = ravel_pytree(v64["params"])
    f = lambda t: net.apply({**v64, "params": unravel(t)}, jnp.asarray(x, jnp.float64), *args,
                            train=bn == "train", mutable=["batch_stats"])[0]
    jac = np.asarray(jax.jit(jax.jacrev(f))(theta))
  return {"sum_logits": lambda: jac.sum(1) @ jac.sum(1).T,
          "trace": lambda: np.einsum("icp,jcp->ij", jac, jac),
          "full": lambda: np.einsum("iap,jbp->ijab", jac, jac)}[reduction]()


class Gated(nn.Module):
  """A tapped conv/BN/dense net whose second branch is weighted by an arch
  input, so that archs are data as in NB201."""

  @nn.compact
  def __call__(self, x, gate, train: bool = False):
    y = layers.Conv(x.shape[-1], 4, 3, 1, 1, name="conv")(x)
    y = layers.BatchNorm(4, name="bn")(y, train)
    y = nn.relu(y) + gate * layers.Conv(4, 4, 1, 1, 0, name="branch")(nn.relu(y))
    return layers.Dense(4, 3, name="classifier")(y.mean(axis=(1, 2)))

  def couples_samples(self, train: bool) -> bool:
    return train


def gated_setup(n=6):
  x = jax.random.normal(jax.random.key(1), (n, 6, 6, 3))
  net = Gated()
  v = jax.jit(net.init)(jax.random.key(0), x, jnp.float32(0.5))
  return net, v, x


def toy_data(n=20):
  rng = np.random.default_rng(0)
  return data.Dataset(rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8), rng.integers(0, 3, n).astype(np.int32),
                      3, "toy", (0.5,) * 3, (0.25,) * 3)


# ----------------------------------------------------------------------------- NB101

# The Inception-like spec of the official NASBench notebook.
INCEPTION = nb101.Spec.create(
    [[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
    ["input", "conv1x1-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu",
     "maxpool3x3", "output"])
CHAIN = nb101.Spec.create([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                          ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
# input -> output directly, plus two vertices with 3 + 1 output split (truncation)
SKIP = nb101.Spec.create(
    [[0, 1, 1, 0, 0, 1], [0, 0, 0, 1, 0, 1], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]],
    ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "output"])
