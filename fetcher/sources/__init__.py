"""Where models come from: HTTP(S) zips, persistent volumes, S3 prefixes."""
