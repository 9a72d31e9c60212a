"""Business rules: no boto3, no Lambda event shapes."""
