"""Triton Python-backend model for sluice-embed.

Does what the Sluice gpu-server's "text-embedding" backend does
(gpu-server/backends/text-embedding.ts): NFKC + lower-case each text, tokenize
with the r50k_base BPE (tiktoken's is the same vocabulary as gpt-tokenizer's),
keep at most `max_tokens` tokens (reading at most 32 characters per kept token), and run model.onnx (token ids + mask ->
unit-length embedding) with ONNX Runtime.

Needs `onnxruntime` (`onnxruntime-gpu` for GPU instances) and `tiktoken` in the Python
backend's environment: deploy/triton/Dockerfile installs them.
"""
import json
import os
import unicodedata

import numpy as np
import onnxruntime as ort
import tiktoken
import triton_python_backend_utils as pb_utils
from execution_providers import execution_providers


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.max_tokens = int(params.get("max_tokens", "256"))
        self.encoding = tiktoken.get_encoding(params.get("tokenizer", "r50k_base"))
        model_file = os.path.join(
            args["model_repository"], args["model_version"], params.get("onnx_model_filename", "model.onnx")
        )
        self.session = ort.InferenceSession(model_file, providers=execution_providers(args))

    def execute(self, requests):
        # Triton's dynamic batcher hands us several requests; run them as one batch.
        texts, sizes = [], []
        for request in requests:
            array = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
            sizes.append(len(array))
            for value in array:
                raw = value.decode("utf-8") if isinstance(value, bytes) else str(value)
                # Only the first max_tokens tokens count: text past 32 characters per kept token is not
                # tokenized (text-embedding.ts cuts at the same place), which bounds the cost of long runs.
                texts.append(unicodedata.normalize("NFKC", raw).lower()[: self.max_tokens * 32])
        ids = [self.encoding.encode(t, disallowed_special=())[: self.max_tokens] for t in texts]
        width = max([1] + [len(row) for row in ids])
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.float32)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1.0
        (embedding,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})

        responses, start = [], 0
        for size in sizes:
            out = pb_utils.Tensor("embedding", embedding[start : start + size].astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            start += size
        return responses
