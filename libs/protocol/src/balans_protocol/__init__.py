"""balans-protocol: the concentrator wire format and the NATS contracts.

- ``frames``: frame types, :func:`~balans_protocol.frames.encode_frame`,
  :func:`~balans_protocol.frames.decode_frame`, :class:`~balans_protocol.frames.FrameSplitter`
- ``records``: UPLOAD records (pulse, temperature, status, event, raw M-Bus telegram)
- ``auth``: HMAC-SHA256 tags and the handshake's session key
- ``errors``: :class:`~balans_protocol.errors.ProtocolError` and the NACK reason codes
- ``subjects``, ``messages``, ``streams``: NATS subjects, JSON message models, JetStream streams

The wire format is specified in docs/protocol.md.
"""
