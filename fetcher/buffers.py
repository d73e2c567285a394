"""The size of each read from a network stream or an archive member."""

# Below glibc's mmap threshold (128 KiB): each larger bytes object is a fresh mmap whose pages are
# faulted in and zeroed again, which measured as 3x the system CPU of a 1 GiB download. Reads this
# size reuse heap memory.
READ_SIZE = 64 * 1024
