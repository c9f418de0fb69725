"""From raw pictures to training data: ingest of folders and archives, face detection and alignment,
tags, and the datasets' filters, splits and shards."""
