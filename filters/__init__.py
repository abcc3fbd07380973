"""Built-in document stages. Each registers through the entry-point group `curate.stages`, as a third-party
package's stages would."""
