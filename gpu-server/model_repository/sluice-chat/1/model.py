"""Triton Python-backend model for sluice-chat and sluice-chat-batch.

Serves a Hugging Face causal LM in Optimum's ONNX export layout (model.onnx
with past_key_values inputs, tokenizer.json, optional config.json) with the
tensors of Triton's vLLM backend, as the Sluice gpu-server's "causal-lm"
backend does (gpu-server/backends/causal-lm/). Differences: requests run one
after another (no continuous batching), and seeded sampling uses numpy's
generator, so a seed reproduces text on this server but not the Sluice
server's text; greedy (temperature 0) output is the same on both.

- decoupled (sluice-chat): responses go through each request's
  response_sender; with stream=true one per new piece of text, the last one
  flagged TRITONSERVER_RESPONSE_COMPLETE_FINAL; a cancelled request ends with
  finish_reason "cancelled".
- batched (sluice-chat-batch): one response per request, rows in order.

Needs `onnxruntime`, `tokenizers` and `numpy` in the Python backend's
environment. sluice-chat-batch/1/model.py is a symlink to this file.
"""
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils
from execution_providers import execution_providers
from tokenizers import Tokenizer

SAMPLING_KEYS = {"max_tokens", "temperature", "top_p", "seed", "stop", "ignore_eos"}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        hf_file = os.path.join(version_dir, "config.json")
        hf = json.load(open(hf_file)) if os.path.exists(hf_file) else {}
        self.session = ort.InferenceSession(
            os.path.join(version_dir, params.get("onnx_model_filename", "model.onnx")), providers=execution_providers(args)
        )
        self.tokenizer = Tokenizer.from_file(os.path.join(version_dir, "tokenizer.json"))
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.layers = sum(1 for name in inputs if name.startswith("past_key_values.") and name.endswith(".key"))
        shape = inputs["past_key_values.0.key"].shape
        heads = hf.get("num_key_value_heads", hf.get("num_attention_heads"))
        self.kv_heads = shape[1] if isinstance(shape[1], int) else heads
        self.head_dim = shape[3] if isinstance(shape[3], int) else hf.get("head_dim", hf["hidden_size"] // hf["num_attention_heads"])
        self.has_position_ids = "position_ids" in inputs
        eos = hf.get("eos_token_id", [])
        self.eos = set(eos if isinstance(eos, list) else [eos])
        self.context_length = int(params.get("context_length", hf.get("max_position_embeddings", 0)))
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)
        self.batched = config.get("max_batch_size", 0) > 0

    def execute(self, requests):
        if not self.decoupled:
            return [self._batched_response(request) for request in requests]
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._stream(request, sender)
            except Exception as error:  # the request fails, the model goes on
                sender.send(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error))),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
                )
        return None

    # ------------------------------------------------------------ requests

    def _rows(self, request, name, default):
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            return None if default is None else [default]
        return list(tensor.as_numpy().reshape(-1))

    def _batched_response(self, request):
        try:
            prompts = [p.decode("utf-8") for p in self._rows(request, "text_input", None)]
            sampling = self._rows(request, "sampling_parameters", b"")
            excludes = self._rows(request, "exclude_input_in_output", False)
            texts, n_in, n_out, reasons = [], [], [], []
            for i, prompt in enumerate(prompts):
                params = parse_sampling(sampling[min(i, len(sampling) - 1)].decode("utf-8"))
                text, inputs, outputs, reason = self._generate(prompt, params, None, lambda: False)
                exclude = bool(excludes[min(i, len(excludes) - 1)])
                texts.append(text if exclude else prompt + text)
                n_in.append(inputs)
                n_out.append(outputs)
                reasons.append(reason)
            shape = (len(prompts), 1) if self.batched else (len(prompts),)
            return pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor("text_output", np.array(texts, dtype=np.object_).reshape(shape)),
                    pb_utils.Tensor("num_input_tokens", np.array(n_in, dtype=np.uint32).reshape(shape)),
                    pb_utils.Tensor("num_output_tokens", np.array(n_out, dtype=np.uint32).reshape(shape)),
                    pb_utils.Tensor("finish_reason", np.array(reasons, dtype=np.object_).reshape(shape)),
                ]
            )
        except Exception as error:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))

    def _stream(self, request, sender):
        prompt = self._rows(request, "text_input", None)[0].decode("utf-8")
        params = parse_sampling(self._rows(request, "sampling_parameters", b"")[0].decode("utf-8"))
        stream = bool(self._rows(request, "stream", False)[0])
        exclude_rows = self._rows(request, "exclude_input_in_output", None)
        if stream and exclude_rows is not None and not exclude_rows[0]:
            raise ValueError("When streaming, `exclude_input_in_output` = False is not allowed")
        exclude = stream if exclude_rows is None else bool(exclude_rows[0])
        flags = {name: bool(self._rows(request, name, False)[0]) for name in ("return_num_input_tokens", "return_num_output_tokens", "return_finish_reason")}

        def response(text, n_in, n_out, reason=None):
            outputs = [pb_utils.Tensor("text_output", np.array([text], dtype=np.object_))]
            if flags["return_num_input_tokens"]:
                outputs.append(pb_utils.Tensor("num_input_tokens", np.array([n_in], dtype=np.uint32)))
            if flags["return_num_output_tokens"]:
                outputs.append(pb_utils.Tensor("num_output_tokens", np.array([n_out], dtype=np.uint32)))
            if flags["return_finish_reason"] and reason is not None:
                outputs.append(pb_utils.Tensor("finish_reason", np.array([reason], dtype=np.object_)))
            return pb_utils.InferenceResponse(output_tensors=outputs)

        n_in = len(self.tokenizer.encode(prompt).ids)
        held = []  # the last piece, sent when the next is known so the final one carries the finish reason

        def on_piece(text, tokens):
            if held:
                sender.send(response(held[0][0], n_in, held[0][1]))
                held.clear()
            held.append((text, tokens))

        text, _, n_out, reason = self._generate(prompt, params, on_piece if stream else None, sender.is_cancelled)
        if stream:
            # _generate's last on_piece call holds the rest of the text and of the tokens.
            final = response(held[0][0], n_in, held[0][1], reason)
        else:
            final = response(text if exclude else prompt + text, n_in, n_out, reason)
        sender.send(final, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    # ------------------------------------------------------------ generation

    def _generate(self, prompt, params, on_piece, cancelled):
        """Returns (text, input tokens, output tokens, finish reason); on_piece(text, tokens) gets certain pieces."""
        ids = self.tokenizer.encode(prompt).ids
        if len(ids) >= self.context_length:
            raise ValueError(f"the prompt has {len(ids)} tokens, but the context length is {self.context_length}")
        rng = np.random.default_rng(params["seed"])
        past = {
            f"past_key_values.{l}.{kind}": np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=np.float32)
            for l in range(self.layers)
            for kind in ("key", "value")
        }
        feed_ids, length = ids, 0
        generated, text, emitted, reported = [], "", 0, 0
        reason, cut_at_stop = "length", False
        while True:
            if cancelled():
                reason = "cancelled"
                break
            n = len(feed_ids)
            feeds = {"input_ids": np.array([feed_ids], dtype=np.int64), "attention_mask": np.ones((1, length + n), dtype=np.int64), **past}
            if self.has_position_ids:
                feeds["position_ids"] = np.arange(length, length + n, dtype=np.int64)[None, :]
            names = [o.name for o in self.session.get_outputs()]
            out = dict(zip(names, self.session.run(names, feeds)))
            past = {f"past_key_values.{l}.{kind}": out[f"present.{l}.{kind}"] for l in range(self.layers) for kind in ("key", "value")}
            length += n
            token = sample(out["logits"][0, -1], params, rng)
            generated.append(token)
            if token in self.eos and not params["ignore_eos"]:
                reason = "stop"
                break
            decoded = self.tokenizer.decode(generated, skip_special_tokens=True)
            if not decoded.endswith("\ufffd"):
                text = decoded
                cut = min((i for i in (text.find(s) for s in params["stop"]) if i >= 0), default=-1)
                if cut >= 0:
                    text, reason, cut_at_stop = text[:cut], "stop", True
                    break
                safe = len(text) - max((held_back(text, s) for s in params["stop"]), default=0)
                if on_piece and safe > emitted:
                    on_piece(text[emitted:safe], len(generated) - reported)
                    emitted, reported = safe, len(generated)
            if len(generated) >= params["max_tokens"] or len(ids) + len(generated) >= self.context_length:
                break
            feed_ids = [token]
        if not cut_at_stop:
            # Everything generated, incomplete bytes at the end included (as U+FFFD).
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
        if on_piece:
            on_piece(text[emitted:], len(generated) - reported)
        return text, len(ids), len(generated), reason


def held_back(text, stop):
    """Length of the longest end of `text` that could still become `stop`."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


def parse_sampling(raw):
    params = json.loads(raw) if raw.strip() else {}
    if not isinstance(params, dict):
        raise ValueError(f"sampling_parameters expects a JSON object, but got {type(params).__name__}")
    unknown = set(params) - SAMPLING_KEYS
    if unknown:
        raise ValueError(f"sampling_parameters has unsupported key(s) {sorted(unknown)}; supported: {sorted(SAMPLING_KEYS)}")
    stop = params.get("stop") or []
    result = {
        "max_tokens": int(params.get("max_tokens", 16)),
        "temperature": float(params.get("temperature", 1)),
        "top_p": float(params.get("top_p", 1)),
        "seed": None if params.get("seed") is None else int(params["seed"]),
        "stop": [stop] if isinstance(stop, str) else list(stop),
        "ignore_eos": str(params.get("ignore_eos", False)).lower() == "true",
    }
    if result["max_tokens"] < 1 or result["temperature"] < 0 or not 0 < result["top_p"] <= 1:
        raise ValueError(f"sampling_parameters out of range: max_tokens ≥ 1, temperature ≥ 0, top_p in (0, 1], got {raw}")
    return result


def sample(logits, params, rng):
    if params["temperature"] == 0:
        return int(np.argmax(logits))
    scaled = (logits - logits.max()) / params["temperature"]
    weights = np.exp(scaled.astype(np.float64))
    if params["top_p"] < 1:
        order = np.argsort(-weights, kind="stable")
        cumulative = np.cumsum(weights[order])
        keep = order[: int(np.searchsorted(cumulative, params["top_p"] * cumulative[-1])) + 1]
        mask = np.zeros_like(weights)
        mask[keep] = 1
        weights = weights * mask
    return int(rng.choice(len(weights), p=weights / weights.sum()))
