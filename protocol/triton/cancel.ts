/**
 * Cancelling one request of a shared ModelStreamInfer call. Triton's protocol
 * can only cancel a whole call, which would cancel every request multiplexed
 * on it; so a client writes, on the same call, a request with the `id` to
 * cancel, the model's name, no inputs and this bool parameter set. The
 * Sluice gpu-server stops that request (a generating sequence within one
 * decode step) and sends nothing for the cancel message itself. NVIDIA's
 * Triton does not know the parameter and answers with an error for that id,
 * which a client that has stopped routing the id ignores.
 */
export const CANCEL_REQUEST_PARAMETER = 'sluice_cancel';
