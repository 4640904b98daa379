{
  "targets": [{
    "target_name": "dfs_fuse",
    "sources": ["dfs_fuse.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-D_FILE_OFFSET_BITS=64", "<!@(pkg-config --cflags fuse3)"],
    "libraries": ["<!@(pkg-config --libs fuse3)"],
    "defines": ["FUSE_USE_VERSION=314", "NAPI_VERSION=8"]
  }]
}
