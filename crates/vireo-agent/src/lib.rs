//! The vireo host agent (being built: issue 4 adds enrollment and the simulation, issue 5 QEMU).
