/*
** Training and evaluation figures: see train_plot.h.
*/
#include "train_plot.h"

#include <math.h>

int sl_train_figure(sl_curve loss, sl_curve acc, sl_curve eval_acc, sl_curve n_curve, double chance, const char *title,
                    sl_figure **out, sl_err *err)
{
    *out = NULL;
    const int cols = n_curve.n ? 3 : 2;
    sl_figure *fig = sl_figure_new(250.0 * cols, 230, 1, cols);
    if (!fig) return sl_err_set(err, SL_ENOMEM, "out of memory for the figure");
    if (title) sl_figure_title(fig, title);
    sl_axes *a = sl_figure_axes(fig, 0, 0);
    sl_axes_line(a, loss.n, loss.x, loss.y, &(sl_style){ .color = sl_tab10(0), .linewidth = 1.0 });
    sl_axes_ylog(a, 1);
    sl_axes_xlabel(a, "step");
    sl_axes_ylabel(a, "loss (training batch)");
    sl_axes_grid(a, 1);
    sl_axes *b = sl_figure_axes(fig, 0, 1);
    sl_axes_line(b, acc.n, acc.x, acc.y, &(sl_style){ .color = sl_tab10(0), .linewidth = 1.0, .alpha = 0.6, .label = "training batch" });
    if (eval_acc.n)
        sl_axes_line(b, eval_acc.n, eval_acc.x, eval_acc.y,
                     &(sl_style){ .color = sl_tab10(1), .marker = SL_MARKER_CIRCLE, .markersize = 3, .label = "evaluation" });
    if (isfinite(chance)) sl_axes_hline(b, chance, &(sl_style){ .dash = SL_DASH_DASHED });
    sl_axes_ylim(b, 0.0, 1.02);
    sl_axes_xlabel(b, "step");
    sl_axes_ylabel(b, "accuracy");
    sl_axes_grid(b, 1);
    sl_axes_legend(b, SL_LEGEND_LOWER_RIGHT);
    if (n_curve.n) {
        sl_axes *c = sl_figure_axes(fig, 0, 2);
        sl_axes_line(c, n_curve.n, n_curve.x, n_curve.y, &(sl_style){ .color = sl_tab10(2), .marker = SL_MARKER_CIRCLE, .markersize = 3 });
        sl_axes_xlabel(c, "step");
        sl_axes_ylabel(c, "curriculum N");
        sl_axes_grid(c, 1);
    }
    int rc = sl_figure_status(fig, err);
    if (rc) { sl_figure_free(fig); return rc; }
    *out = fig;
    return SL_OK;
}

int sl_eval_figure(sl_curve acc, sl_curve acc_last, double train_length, double chance, const char *title,
                   sl_figure **out, sl_err *err)
{
    *out = NULL;
    sl_figure *fig = sl_figure_new(360, 270, 1, 1);
    if (!fig) return sl_err_set(err, SL_ENOMEM, "out of memory for the figure");
    if (title) sl_figure_title(fig, title);
    sl_axes *a = sl_figure_axes(fig, 0, 0);
    sl_axes_line(a, acc.n, acc.x, acc.y,
                 &(sl_style){ .color = sl_tab10(0), .marker = SL_MARKER_CIRCLE, .label = "every step" });
    if (acc_last.n)
        sl_axes_line(a, acc_last.n, acc_last.x, acc_last.y,
                     &(sl_style){ .color = sl_tab10(1), .marker = SL_MARKER_SQUARE, .label = "last step" });
    if (isfinite(train_length)) sl_axes_vline(a, train_length, &(sl_style){ .dash = SL_DASH_DASHED });
    if (isfinite(chance)) sl_axes_hline(a, chance, &(sl_style){ .dash = SL_DASH_DOTTED });
    int logx = acc.n >= 2;
    for (size_t i = 0; i < acc.n; i++) logx = logx && acc.x[i] > 0;
    sl_axes_xlog(a, logx);
    sl_axes_ylim(a, 0.0, 1.02);
    sl_axes_xlabel(a, "test length (steps)");
    sl_axes_ylabel(a, "accuracy");
    sl_axes_grid(a, 1);
    sl_axes_legend(a, SL_LEGEND_BEST);
    int rc = sl_figure_status(fig, err);
    if (rc) { sl_figure_free(fig); return rc; }
    *out = fig;
    return SL_OK;
}
