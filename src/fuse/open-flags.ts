// Linux open(2) flag bits the VFSs read from a FUSE open/create request.
export const O_ACCMODE = 3;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_TRUNC = 0o1000;
