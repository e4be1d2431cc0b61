import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray reads this when imported (before any test module imports it): without it 127.0.0.1 becomes eth0's address
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
torch.set_num_threads(2)


def make_tiny_adapter(layers: int = 2, seed: int = 0):
    """A randomly initialised toy-architecture Janus model (fast; no pretrained weights)."""
    from transformers import JanusForConditionalGeneration

    from models.janus import JanusAdapter
    from models.toy import TEMPLATES, toy_config
    from toyworld.vocabulary import build_tokenizer

    torch.manual_seed(seed)
    tok = build_tokenizer()
    cfg = toy_config(len(tok), tok.convert_tokens_to_ids("<image>"), hidden=32, layers=layers, heads=2,
                     vision_hidden=32, vision_layers=1, codebook=64)
    return JanusAdapter(JanusForConditionalGeneration(cfg).eval(), tok, TEMPLATES)


@pytest.fixture(scope="session")
def tiny_adapter():
    return make_tiny_adapter()


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster on 127.0.0.1 for the whole test session (starting one costs ~7 s)."""
    import ray

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env = {"env_vars": {"GLOO_SOCKET_IFNAME": "lo", "TOKENIZERS_PARALLELISM": "false"}}
    # address="local": a new cluster even where another one (or a stale pointer to one) exists on this machine
    ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env=env)
    yield ray
    ray.shutdown()
