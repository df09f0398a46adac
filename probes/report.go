package probes
