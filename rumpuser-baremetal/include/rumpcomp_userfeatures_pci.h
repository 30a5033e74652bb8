/*
 * rumpuser-baremetal: the PCI hypercall features this platform provides,
 * for building NetBSD's librumpdev_pci (sys/rump/dev/lib/libpci/pci_user.h
 * includes this file). Put the directory holding it on the kernel
 * layer's include path when building the PCI libraries (see the README
 * of `cargo xtask baremetal-dist`).
 *
 * RUMPCOMP_USERFEATURE_PCI_DMAFREE: rumpcomp_pci_dmafree() exists, so
 *   bus_dmamem_free() returns DMA memory instead of panicking.
 * RUMPCOMP_USERFEATURE_PCI_IOSPACE: port I/O works (the kernel runs in
 *   ring 0) and rumpcomp_pci_iospace_init() exists, so drivers can map
 *   I/O BARs (the legacy virtio interface NetBSD's virtio(4) uses).
 */
#ifndef RUMPCOMP_USERFEATURES_PCI_H
#define RUMPCOMP_USERFEATURES_PCI_H
#define RUMPCOMP_USERFEATURE_PCI_DMAFREE
#define RUMPCOMP_USERFEATURE_PCI_IOSPACE
#endif
