"""The PyTorch ELMo module against bilm-tf's own outputs, and padding exactness."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from stages.elmo.charids import batch_ids, sentence_ids
from stages.reports.metrics import cosine
from stages.elmo.model import StatefulElmo, load_elmo

TOL = 1e-5


@pytest.fixture(scope="module", params=["dense", "onednn"])
def fixture_model(bilm_fixture, request):
    """The module as exported, and with its weight products on oneDNN (the accuracy stage's
    PyTorch reference): both must be bilm-tf's model."""
    model = load_elmo(bilm_fixture / "options.json", bilm_fixture / "lm_weights.hdf5")
    if request.param == "onednn":
        assert model.use_onednn()
        assert model.hidden_weights[0].numel() == 0  # the dense copy is not kept beside oneDNN's
    return model


def test_onednn_products_match_dense_ones(bilm_fixture, fixture_sentences):
    dense = load_elmo(bilm_fixture / "options.json", bilm_fixture / "lm_weights.hdf5")
    onednn = load_elmo(bilm_fixture / "options.json", bilm_fixture / "lm_weights.hdf5")
    assert onednn.use_onednn()
    ids = torch.from_numpy(batch_ids([s for row in fixture_sentences for s in row[:3]]))
    with torch.no_grad():
        want, got = dense(ids).numpy(), onednn(ids).numpy()
    assert np.abs(want).max() > 0.1
    assert np.abs(got - want).max() < 1e-5


def _expected(bilm_fixture, i):
    with h5py.File(bilm_fixture / "lm_embeddings_0.hdf5", "r") as ref:
        data = ref[str(i)][...]
    return np.concatenate([data[0], data[1]], axis=-1)


def _batch(fixture_sentences, i):
    return [fixture_sentences[k][i] for k in range(3)]


def test_stateless_batch0_matches_bilm_tf(fixture_model, fixture_sentences, bilm_fixture):
    batch = _batch(fixture_sentences, 0)
    with torch.no_grad():
        layers, mask, _ = fixture_model.layers(torch.from_numpy(batch_ids(batch)))
    top = layers[-1][0, : len(batch[0])].numpy()
    assert np.abs(top - _expected(bilm_fixture, 0)).max() < TOL
    assert mask[0].sum() == len(batch[0])


def test_stateful_all_batches_match_bilm_tf(fixture_model, fixture_sentences, bilm_fixture):
    stream = StatefulElmo(fixture_model)
    worst = 0.0
    for i in range(10):
        batch = _batch(fixture_sentences, i)
        layers, _ = stream.layers(torch.from_numpy(batch_ids(batch)))
        top = layers[-1][0, : len(batch[0])].numpy()
        worst = max(worst, float(np.abs(top - _expected(bilm_fixture, i)).max()))
    assert worst < TOL


def test_stateless_differs_from_stateful_after_first_batch(fixture_model, fixture_sentences, bilm_fixture):
    # Guards the test above: the state really matters for batch 1.
    batch = _batch(fixture_sentences, 1)
    with torch.no_grad():
        layers, _, _ = fixture_model.layers(torch.from_numpy(batch_ids(batch)))
    top = layers[-1][0, : len(batch[0])].numpy()
    assert np.abs(top - _expected(bilm_fixture, 1)).max() > 1e-3


def test_stateful_smaller_batch_uses_leading_rows(fixture_model, fixture_sentences):
    stream = StatefulElmo(fixture_model)
    stream.layers(torch.from_numpy(batch_ids(_batch(fixture_sentences, 0))))
    first_row_state = [h[:1].clone() for h, _ in stream.state]
    layers, _ = stream.layers(torch.from_numpy(batch_ids([fixture_sentences[0][1]])))
    assert layers[0].shape[0] == 1
    # rows 1 and 2 kept; row 0 moved on
    assert not torch.equal(stream.state[0][0][:1], first_row_state[0])


def test_output_is_scalar_mix_of_layers(fixture_model, fixture_sentences):
    ids = torch.from_numpy(batch_ids(_batch(fixture_sentences, 3)))
    with torch.no_grad():
        layers, _, _ = fixture_model.layers(ids)
        mixed = fixture_model(ids)
    expected = sum(layers) / 3.0
    assert mixed.shape == (3, ids.shape[1], 32)
    assert torch.allclose(mixed, expected, atol=1e-6)


@pytest.mark.parametrize("word_len", [8, 12])
def test_padding_is_exact_for_every_length(fixture_model, fixture_sentences, word_len):
    sentences = [s for row in fixture_sentences for s in row]
    filler = sentences[0][:word_len]
    worst = 1.0
    with torch.no_grad():
        for n in range(1, word_len + 1):
            tokens = sentences[n][:n] if len(sentences[n]) >= n else (sentences[n] * n)[:n]
            alone = fixture_model(torch.from_numpy(sentence_ids(tokens)[None]))[0].numpy()
            padded = fixture_model(torch.from_numpy(batch_ids([tokens, filler], word_len)))[0].numpy()
            worst = min(worst, float(cosine(alone, padded[:n]).min()))
            assert np.all(padded[n:] == 0.0), f"padding not zero for length {n}"
    assert worst >= 0.99999


def test_mixed_length_batch_rows_are_independent(fixture_model, fixture_sentences):
    rows = [fixture_sentences[0][3], fixture_sentences[1][5][:7], fixture_sentences[2][9][:1]]
    with torch.no_grad():
        together = fixture_model(torch.from_numpy(batch_ids(rows, 10))).numpy()
        for i, tokens in enumerate(rows):
            alone = fixture_model(torch.from_numpy(sentence_ids(tokens)[None]))[0].numpy()
            assert cosine(alone, together[i, : len(tokens)]).min() >= 0.99999


def test_all_empty_rows_give_zeros(fixture_model):
    with torch.no_grad():
        out = fixture_model(torch.zeros((2, 4, 50), dtype=torch.int32))
    assert out.shape == (2, 4, 32) and torch.count_nonzero(out) == 0


def test_char_cnn_in_slices_gives_the_same_vectors(fixture_model, fixture_sentences, monkeypatch):
    """Eager inference runs the char CNN a slice of tokens at a time (bounded memory for large
    batches): every token's vector is the one a single pass gives."""
    from stages.elmo import model as module

    ids = torch.from_numpy(batch_ids([s[:8] for row in fixture_sentences for s in row], 8))  # 30 x 10 steps
    passes = []
    one_pass = module.ElmoBiLM._char_cnn
    monkeypatch.setattr(module.ElmoBiLM, "_char_cnn",
                        lambda self, flat: passes.append(len(flat)) or one_pass(self, flat))
    with torch.no_grad():
        whole = fixture_model.layers(ids)[0]
        assert passes == [300]
        monkeypatch.setattr(module, "CNN_SLICE_TOKENS", 7)
        sliced = fixture_model.layers(ids)[0]
    assert passes[1:] == [7] * 42 + [6]
    for one, other in zip(whole, sliced):
        np.testing.assert_allclose(other.numpy(), one.numpy(), rtol=0, atol=1e-6)


def test_stateless_skips_each_directions_dead_last_step(fixture_model, fixture_sentences, monkeypatch):
    """Stateless, the forward pass stops before position W+1 and the backward pass before position 0
    (sentence marks, whose outputs are dropped): one hidden and one projection product fewer per layer
    and direction, and the same vectors as running every step from a zero state."""
    from stages.elmo import model as module

    rows = [fixture_sentences[0][3][:6], fixture_sentences[1][5][:3]]  # the first fills WORD_LEN: </S> at W+1
    ids = torch.from_numpy(batch_ids(rows, 6))
    steps = 6 + 2
    products = {}
    times = module.ElmoBiLM._times
    monkeypatch.setattr(module.ElmoBiLM, "_times",
                        lambda self, x, w: products.__setitem__(id(w), products.get(id(w), 0) + 1) or times(self, x, w))
    with torch.no_grad():
        skipped, _, _ = fixture_model.layers(ids)
        counted = dict(products)
        every_step, _, _ = fixture_model.layers(ids, fixture_model.zero_state(2, fixture_model.proj_bias))
    for index in range(2 * fixture_model.options.n_layers):
        assert counted[id(fixture_model.proj_weights[index])] == steps - 1
        assert counted[id(fixture_model.hidden_weights[index])] == steps - 2  # the first starts from zeros
    for got, want in zip(skipped, every_step):
        assert np.abs(got.numpy() - want.numpy()).max() < 1e-6
