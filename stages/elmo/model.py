"""ELMo (bilm-tf / allennlp ``Elmo``) as a PyTorch module written for export.

Differences from allennlp's module, each on purpose:

* Stateless by default: every call starts from a zero LSTM state, so an
  exported graph never carries the state of whatever ran before the export.
  Streaming (stateful) semantics are available through ``initial_state``.
* Padding is exact inside fixed shapes: rows of zero ids are padding; the
  sentence marks are placed per row from its length, LSTM steps on padding
  leave the state untouched, and padded outputs are zero. No data-dependent
  shape, no sorting or packing, so the same graph is exact for every length.
* The LSTM input projection is computed for all time steps in one MatMul;
  see ``_run_layer``.

TensorFlow conventions are converted once, at load time: gate order
(i, j, f, o), the +1 forget-gate bias, the split of ``W_0`` into input and
hidden rows, the implicit all-zero padding row of the char embedding, and
bilm-tf's highway form ``carry * relu(transform) + (1 - carry) * x``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from stages.elmo.charids import BOS_IDS, EOS_IDS
from stages.elmo.elmo_options import ElmoOptions, load_options
from stages.elmo.hdf5_weights import CHAR_ROWS, lstm_key, read_weights

LayerState = Tuple[torch.Tensor, torch.Tensor]  # (hidden [B, P], cell [B, C])
# One entry per (layer, direction), in the order layer 0 fwd, layer 0 bwd, layer 1 fwd, ...
LstmState = List[LayerState]

FORGET_BIAS = 1.0  # tf.nn.rnn_cell.LSTMCell's default, added to the stored bias
# Eager inference runs the char CNN on at most this many tokens at a time (a batch of 32 ten-step
# sentences): the same vectors, a tenth of the activation memory for a batch of 128 of them, and
# no slower (38.8 against 37.6 sentences/s for the accuracy stage's reference).
CNN_SLICE_TOKENS = 320


def _const(array: np.ndarray) -> nn.Parameter:
    # A copy, not torch.from_numpy: torch 1.9's ONNX exporter (export image)
    # frees the graph's constants after Python has shut down, and a tensor over
    # a numpy buffer then crashes the process on exit.
    return nn.Parameter(torch.tensor(np.asarray(array, dtype=np.float32)), requires_grad=False)


class ElmoBiLM(nn.Module):
    """Char CNN + highway + projection + biLSTM, with allennlp ``Elmo``'s scalar mix on top."""

    def __init__(self, options: ElmoOptions, arrays: Dict[str, np.ndarray]):
        super().__init__()
        self.options = options
        e, p, c = options.char_embed_dim, options.projection_dim, options.cell_dim

        table = np.zeros((CHAR_ROWS + 1, e), dtype=np.float32)
        table[1:] = arrays["char_embed"]
        self.char_table = _const(table)
        self.conv_weights = nn.ParameterList()
        self.conv_biases = nn.ParameterList()
        for i, _ in enumerate(options.filters):
            # TF [1, width, E, count] -> torch conv1d [count, E, width]
            self.conv_weights.append(_const(arrays[f"CNN/W_cnn_{i}"][0].transpose(2, 1, 0)))
            self.conv_biases.append(_const(arrays[f"CNN/b_cnn_{i}"]))
        # Carry and transform share one MatMul per highway layer.
        self.highway_weights = nn.ParameterList()
        self.highway_biases = nn.ParameterList()
        for k in range(options.n_highway):
            group = f"CNN_high_{k}"
            self.highway_weights.append(
                _const(np.concatenate([arrays[f"{group}/W_carry"], arrays[f"{group}/W_transform"]], axis=1))
            )
            self.highway_biases.append(_const(np.concatenate([arrays[f"{group}/b_carry"], arrays[f"{group}/b_transform"]])))
        self.proj_weight = _const(arrays["CNN_proj/W_proj"])
        self.proj_bias = _const(arrays["CNN_proj/b_proj"])

        self.input_weights = nn.ParameterList()  # [P, 4C] per (layer, direction)
        self.hidden_weights = nn.ParameterList()  # [P, 4C]
        self.gate_biases = nn.ParameterList()  # [4C]
        self.proj_weights = nn.ParameterList()  # [C, P]
        for layer in range(options.n_layers):
            for direction in (0, 1):
                w0 = arrays[lstm_key(direction, layer, "W_0")]
                bias = arrays[lstm_key(direction, layer, "B")].copy()
                bias[2 * c : 3 * c] += FORGET_BIAS
                self.input_weights.append(_const(self._sigmoid_gates_first(w0[:p], c)))
                self.hidden_weights.append(_const(self._sigmoid_gates_first(w0[p:], c)))
                self.gate_biases.append(_const(self._sigmoid_gates_first(bias, c)))
                self.proj_weights.append(_const(arrays[lstm_key(direction, layer, "W_P_0")]))

        # id(weight) -> the same matrix, transposed, in oneDNN's layout (use_onednn).
        self._onednn_weights: Dict[int, torch.Tensor] = {}

        # allennlp Elmo(..., num_output_representations=1) untrained: softmax(0) weights, gamma 1.
        n_mixed = options.n_layers + 1
        self.register_buffer("mix_weights", torch.full((n_mixed,), 1.0 / n_mixed))
        self.register_buffer("mix_gamma", torch.ones(()))
        self.register_buffer("bos_ids", torch.tensor(BOS_IDS.astype(np.int64)))
        self.register_buffer("eos_ids", torch.tensor(EOS_IDS.astype(np.int64)))

    # -- weight products ----------------------------------------------------
    def _times(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``x @ weight``; every product with a weight matrix goes through here (``use_onednn``)."""
        packed = self._onednn_weights.get(id(weight))
        if packed is None:
            return x.matmul(weight)
        return F.linear(x.contiguous().to_mkldnn(), packed).to_dense()

    def use_onednn(self) -> bool:
        """Compute every weight product with PyTorch's oneDNN kernels instead of its dense GEMM.

        Why: on an AMD EPYC (AVX2) PyTorch's dense GEMM, MKL, ran the LSTM's products at 0.4-0.7x
        oneDNN's speed, and the PyTorch reference of the accuracy stage took 1.5x as long. Still
        float32 (results differ from MKL's in the last bits, as two thread counts do). The weights
        are held once, in oneDNN's layout: the module then serves eager inference on the CPU only,
        not export. Returns False, changing nothing, where PyTorch was built without oneDNN.
        """
        if not torch.backends.mkldnn.is_available():
            return False
        weights = [*self.highway_weights, self.proj_weight, *self.input_weights, *self.hidden_weights,
                   *self.proj_weights]
        for weight in weights:
            if id(weight) not in self._onednn_weights:
                self._onednn_weights[id(weight)] = weight.detach().t().contiguous().to_mkldnn()
                weight.data = weight.data.new_empty(0)  # the dense copy is not read again
        return True

    @staticmethod
    def _sigmoid_gates_first(matrix: np.ndarray, cell: int) -> np.ndarray:
        """TF gate order (i, j, f, o) -> (i, f, o, j): one Sigmoid over a contiguous 3C slice."""
        i, j, f, o = (matrix[..., k * cell : (k + 1) * cell] for k in range(4))
        return np.concatenate([i, f, o, j], axis=-1)

    # -- pieces -----------------------------------------------------------
    def add_sentence_marks(self, char_ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[B, W, 50]`` ids -> ``[B, W+2, 50]`` with <S> first and </S> after each row's last token.

        Returns the ids and the ``[B, W+2]`` bool mask of real positions.
        Positions are compared with per-row lengths, so shapes never depend on data.
        """
        ids = char_ids.long()
        word_len = ids.shape[1]
        lengths = (ids.sum(-1) > 0).long().sum(1, keepdim=True)  # [B, 1]
        empty = ids[:, :1] * 0
        ids = torch.cat([empty, ids, empty], dim=1)
        positions = torch.arange(word_len + 2, device=ids.device).unsqueeze(0)  # [1, W+2]
        is_eos = (positions == lengths + 1).unsqueeze(-1)
        is_bos = (positions == 0).unsqueeze(-1)
        ids = torch.where(is_eos, self.eos_ids, ids)
        ids = torch.where(is_bos, self.bos_ids, ids)
        mask = positions <= lengths + 1
        return ids, mask

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, T, 50]`` marked ids -> ``[B, T, P]`` context-free token vectors."""
        steps = ids.shape[1]
        flat = ids.reshape(-1, ids.shape[-1])
        if not torch.jit.is_tracing() and flat.shape[0] > CNN_SLICE_TOKENS:
            # Eager only (an export traces one pass): the convolutions' outputs take 0.37 MB a token
            # at full size before their max, 0.47 GB for a batch of 128 ten-step sentences.
            parts = [self._char_cnn(flat[start : start + CNN_SLICE_TOKENS])
                     for start in range(0, flat.shape[0], CNN_SLICE_TOKENS)]
            return torch.cat(parts).reshape(-1, steps, parts[0].shape[-1])
        x = self._char_cnn(flat)
        return x.reshape(-1, steps, x.shape[-1])

    def _char_cnn(self, flat_ids: torch.Tensor) -> torch.Tensor:
        """``[N, 50]`` ids of N tokens -> ``[N, P]``: char CNN, highway, projection."""
        chars = F.embedding(flat_ids, self.char_table)  # [N, 50, E]
        chars = chars.transpose(1, 2)
        activation = torch.relu if self.options.activation == "relu" else torch.tanh
        pooled = []
        for weight, bias in zip(self.conv_weights, self.conv_biases):
            convolved = F.conv1d(chars, weight, bias)
            pooled.append(activation(convolved.max(dim=-1)[0]))
        x = torch.cat(pooled, dim=-1)
        n_filters = x.shape[-1]
        for weight, bias in zip(self.highway_weights, self.highway_biases):
            both = self._times(x, weight) + bias
            carry = torch.sigmoid(both[:, :n_filters])
            transform = torch.relu(both[:, n_filters:])
            x = carry * transform + (1.0 - carry) * x
        return self._times(x, self.proj_weight) + self.proj_bias

    def _run_layer(
        self, inputs: torch.Tensor, mask: torch.Tensor, index: int, reverse: bool, state: LayerState,
        hold_state: bool = True, zero_start: bool = False, skip_last: bool = False,
    ) -> Tuple[torch.Tensor, LayerState]:
        """One direction of one LSTM layer over ``[B, T, P]`` inputs.

        ``zero_start``: ``state`` is known to be all zeros, so the first step
        skips the hidden MatMul and the forget term (exact: both are zero).
        ``skip_last``: the last step's output is never read and no final state
        is kept, so it is not computed; its slot repeats the step before (any
        finite value would do) and the returned state is that step's.
        """
        c = self.options.cell_dim
        cell_clip, proj_clip = self.options.cell_clip, self.options.proj_clip
        # The input projection of all T steps is one MatMul, outside the
        # recurrence: at batch 1 each step then reads only the hidden and
        # projection matrices, nearly half the weight traffic of a per-step
        # [x, h] @ W_0 (the recurrence is bound by weight reads, not FLOPs).
        projected = self._times(inputs, self.input_weights[index]) + self.gate_biases[index]
        hidden_weight, proj_weight = self.hidden_weights[index], self.proj_weights[index]
        # Steps work on [B, 1, .] slices: one Split hands each step its inputs and
        # mask, and one Concat stacks the outputs, with no per-step Gather,
        # Unsqueeze or Reshape (at batch 1 the node count is a visible share of
        # the time).
        h, cell = state[0].unsqueeze(1), state[1].unsqueeze(1)
        steps = inputs.shape[1]
        step_inputs = torch.split(projected, 1, dim=1)
        step_masks = torch.split(mask.unsqueeze(-1), 1, dim=1) if hold_state else None
        outputs: List[Optional[torch.Tensor]] = [None] * steps
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            if skip_last and t == order[-1]:
                outputs[t] = outputs[order[-2]]
                break
            # Stateless, a step in ten of each layer and direction reads the
            # 512 x 16384 hidden matrix only to multiply zeros.
            first_from_zero = zero_start and t == order[0]
            gates = step_inputs[t] if first_from_zero else step_inputs[t] + self._times(h, hidden_weight)
            sig_part, tanh_part = torch.split(gates, [3 * c, c], dim=-1)
            in_gate, forget_gate, out_gate = torch.split(torch.sigmoid(sig_part), c, dim=-1)
            new_cell = in_gate * torch.tanh(tanh_part)
            if not first_from_zero:
                new_cell = forget_gate * cell + new_cell
            if cell_clip:
                new_cell = torch.clamp(new_cell, -cell_clip, cell_clip)
            new_h = self._times(out_gate * torch.tanh(new_cell), proj_weight)
            if proj_clip:
                new_h = torch.clamp(new_h, -proj_clip, proj_clip)
            if step_masks is not None:
                # Padding steps keep the state: the forward pass ends with the state
                # at the row's real length, the backward pass reaches the row's
                # last token with its initial state, exactly as if run unpadded.
                real = step_masks[t]
                cell = torch.where(real, new_cell, cell)
                h = torch.where(real, new_h, h)
            else:
                cell, h = new_cell, new_h
            outputs[t] = new_h
        stacked = torch.cat(outputs, dim=1)
        return stacked * mask.unsqueeze(-1).to(stacked.dtype), (h.squeeze(1), cell.squeeze(1))

    def zero_state(self, batch: int, like: torch.Tensor) -> LstmState:
        p, c = self.options.projection_dim, self.options.cell_dim
        return [
            (like.new_zeros((batch, p)), like.new_zeros((batch, c)))
            for _ in range(2 * self.options.n_layers)
        ]

    # -- whole model --------------------------------------------------------
    def layers(
        self, char_ids: torch.Tensor, initial_state: Optional[LstmState] = None
    ) -> Tuple[List[torch.Tensor], torch.Tensor, LstmState]:
        """The ``n_layers + 1`` ELMo layers, each ``[B, W, 2P]`` without sentence marks.

        Returns the layers, the ``[B, W]`` bool mask of real tokens, and the
        final LSTM state (the input of the next batch in stateful mode).
        """
        ids, mask = self.add_sentence_marks(char_ids)
        tokens = self.token_embedding(ids)
        real = mask.unsqueeze(-1).to(tokens.dtype)
        state = initial_state if initial_state is not None else self.zero_state(tokens.shape[0], tokens)
        outputs = [torch.cat([tokens, tokens], dim=-1) * real]
        final_state: LstmState = []
        forward_in, backward_in = tokens, tokens
        for layer in range(self.options.n_layers):
            index = 2 * layer
            # Stateless, the forward pass may run on through the padding after a
            # row's end: nothing real depends on those steps (their outputs are
            # masked) and no final state is kept, so it skips the state holds.
            stateless = initial_state is None
            # Stateless, each direction's last step is dead: the forward pass ends on position W+1 and
            # the backward pass on position 0, the sentence marks' positions, whose outputs are dropped
            # below in every layer, and no final state is kept. Skipping both saves a tenth of the
            # weight reads at WORD_LEN 8 (the recurrence is bound by them at batch 1).
            forward_out, forward_state = self._run_layer(forward_in, mask, index, False, state[index],
                                                         hold_state=not stateless, zero_start=stateless,
                                                         skip_last=stateless)
            backward_out, backward_state = self._run_layer(backward_in, mask, index + 1, True, state[index + 1],
                                                           zero_start=stateless, skip_last=stateless)
            if layer > 0 and self.options.use_skip_connections:
                forward_out = forward_out + forward_in
                backward_out = backward_out + backward_in
            final_state += [forward_state, backward_state]
            outputs.append(torch.cat([forward_out, backward_out], dim=-1))
            forward_in, backward_in = forward_out, backward_out
        word_len = char_ids.shape[1]
        token_mask = mask[:, 2:]  # position t+1 holds token t; t < length <=> t+2 <= length+1
        keep = token_mask.unsqueeze(-1).to(tokens.dtype)
        return [layer_out[:, 1 : word_len + 1] * keep for layer_out in outputs], token_mask, final_state

    def mix(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        mixed = layers[0] * self.mix_weights[0]
        for k in range(1, len(layers)):
            mixed = mixed + layers[k] * self.mix_weights[k]
        return mixed * self.mix_gamma

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        """``[B, W, 50]`` int ids -> ``[B, W, 2P]`` ELMo vectors (zeros at padding)."""
        layers, _, _ = self.layers(char_ids)
        return self.mix(layers)


def load_elmo(options_path, weights_path) -> ElmoBiLM:
    options = load_options(options_path)
    model = ElmoBiLM(options, read_weights(weights_path, options))
    return model.eval()


class StatefulElmo:
    """allennlp/bilm-tf streaming semantics on top of the stateless module.

    Row i's final state after a batch seeds row i of the next batch. A batch
    smaller than an earlier one uses and updates the leading rows only.
    """

    def __init__(self, model: ElmoBiLM):
        self.model = model
        self.state: Optional[LstmState] = None

    @torch.no_grad()
    def layers(self, char_ids: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        batch = char_ids.shape[0]
        if self.state is None or self.state[0][0].shape[0] < batch:
            grown = self.model.zero_state(batch, self.model.proj_weight)
            if self.state is not None:
                old = self.state[0][0].shape[0]
                for (h, c), (old_h, old_c) in zip(grown, self.state):
                    h[:old], c[:old] = old_h, old_c
            self.state = grown
        initial = [(h[:batch], c[:batch]) for h, c in self.state]
        layers, mask, final = self.model.layers(char_ids, initial)
        for (h, c), (new_h, new_c) in zip(self.state, final):
            h[:batch], c[:batch] = new_h, new_c
        return layers, mask
