{
  "targets": [
    {
      "target_name": "fuse_fd",
      "sources": ["native/fuse_fd.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
