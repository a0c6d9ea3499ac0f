"""Protobuf messages of gnostic's openapi_v2 Document (openapiv2.proto, generated openapiv2_pb2.py)."""
