"""A local single-node Kafka built from Maven Central jars; see launcher.py."""
