"""Recording: segment files, their index, their repair and the storage they live on."""
