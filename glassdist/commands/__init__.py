"""What the command line does besides running stages: `status`, `estimate`, `submit`, `init --from`
(derived campaigns), `import` and `export` (with the file formats they read and write)."""
