"""What only development needs, kept out of the Lambda layer: the local stack (``local``), the
``hookline`` command, the in-memory tables, the template reader and the OpenAPI generator."""
