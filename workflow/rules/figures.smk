# One rule per registered figure (genbench.plots.registry.FIGURES), each its own target figure_{name} ->
# results/figures/{name}.pdf/.png: drawn from a table only (plus the sample grids for the qualitative figure), with
# the rows it drew beside it (.csv). The PNG goes into the Snakemake report with the caption in
# workflow/report/figures/{name}.rst. Each figure states the level of the CIs it draws (params.confidence, also
# read by the caption). Inputs and params come from the registry entry (Wiring.figure_inputs / figure_params, genbench.wiring).


for fig in FIGURES.values():

    rule:
        name:
            f"figure_{fig.name}"
        input:
            **wiring.figure_inputs(fig),
        output:
            pdf=layout.figure(fig.name, "pdf"),
            png=report(
                layout.figure(fig.name, "png"),
                caption=f"../report/figures/{fig.name}.rst",
                category="2D track",
                subcategory="Figures",
                labels={"figure": fig.name},
            ),
            data=layout.figure(fig.name, "csv"),
        log:
            layout.log("figures", fig.name),
        benchmark:
            layout.benchmark("figures", fig.name)
        conda:
            "../envs/plots.yaml"
        params:
            **wiring.figure_params(fig),
        script:
            "../scripts/figure.py"
