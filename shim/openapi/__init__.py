"""OpenAPI for kubeshim: schemas (schema.py), served v3/v2 documents (builder.py, v2.py,
components.py, params.py) and server-side field validation (fieldvalidation.py)."""
