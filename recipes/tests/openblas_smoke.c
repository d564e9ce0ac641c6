/* OpenBLAS for wasm32: CBLAS and the f2c-convention Fortran interface against naive loops.
 *
 * Checks both entry points numpy uses: CBLAS (numpy's matmul/dot) and the Fortran
 * interface with f2c's calling conventions (numpy's lapack_lite calls it): subroutines
 * return int, REAL functions return double, COMPLEX functions return through a first
 * pointer argument. A mismatch there would be a wasm signature mismatch, which traps.
 * And OpenBLAS's own LU and Cholesky (dgetrf/dgetrs, dpotrf: its LAPACK subset, which numpy's
 * lapack_lite then leaves to it), and dgemv both ways. Also times a 500x500 dgemm (printed, not checked).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>

typedef struct { double r, i; } dcomplex;
int dgemm_(char *ta, char *tb, int *m, int *n, int *k, double *alpha, double *a, int *lda,
           double *b, int *ldb, double *beta, double *c, int *ldc);
int dtrsm_(char *side, char *uplo, char *ta, char *diag, int *m, int *n, double *alpha,
           double *a, int *lda, double *b, int *ldb);
double sdot_(int *n, float *x, int *incx, float *y, int *incy);
int dgetrf_(int *m, int *n, double *a, int *lda, int *ipiv, int *info);
int dgetrs_(char *trans, int *n, int *nrhs, double *a, int *lda, int *ipiv, double *b, int *ldb, int *info);
int dpotrf_(char *uplo, int *n, double *a, int *lda, int *info);
void zdotc_(dcomplex *ret, int *n, dcomplex *x, int *incx, dcomplex *y, int *incy);

static double rnd(unsigned *state) {
    *state = *state * 1103515245u + 12345u;
    return (double)((*state >> 8) & 0xffff) / 65536.0 - 0.5;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* C = A * B, column-major, A m x k, B k x n */
static void naive(int m, int n, int k, const double *a, const double *b, double *c) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += a[i + p * m] * b[p + j * k];
            c[i + j * m] = s;
        }
}

static int check(const char *what, const double *got, const double *want, int count) {
    double worst = 0;
    for (int i = 0; i < count; i++) worst = fmax(worst, fabs(got[i] - want[i]));
    printf("%s: max error %.3g\n", what, worst);
    return worst < 1e-10 ? 0 : 1;
}

int main(void) {
    unsigned seed = 7;
    int m = 67, n = 45, k = 53, failed = 0;
    double *a = malloc(sizeof(double) * m * k), *b = malloc(sizeof(double) * k * n);
    double *c = malloc(sizeof(double) * m * n), *ref = malloc(sizeof(double) * m * n);
    for (int i = 0; i < m * k; i++) a[i] = rnd(&seed);
    for (int i = 0; i < k * n; i++) b[i] = rnd(&seed);
    naive(m, n, k, a, b, ref);

    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a, m, b, k, 0.0, c, m);
    failed |= check("cblas_dgemm", c, ref, m * n);

    double one = 1.0, zero = 0.0;
    int rc = dgemm_("N", "N", &m, &n, &k, &one, a, &m, b, &k, &zero, c, &m);
    (void)rc;
    failed |= check("dgemm_ (f2c interface)", c, ref, m * n);

    /* y = A x and y = A^T x, contiguous and strided (the SIMD kernels' two paths) */
    for (int stride = 1; stride <= 2; stride++) {
        double xv[2 * 67], yv[2 * 67], want[67];
        for (int trans = 0; trans <= 1; trans++) {
            int rows = trans ? k : m, cols = trans ? m : k;
            for (int i = 0; i < 2 * 67; i++) xv[i] = rnd(&seed), yv[i] = 0;
            for (int i = 0; i < rows; i++) {
                double v = 0;
                for (int p = 0; p < cols; p++) v += (trans ? a[p + i * m] : a[i + p * m]) * xv[p * stride];
                want[i] = 2.0 * v;
            }
            cblas_dgemv(CblasColMajor, trans ? CblasTrans : CblasNoTrans, m, k, 2.0, a, m, xv, stride, 0.0, yv,
                        stride);
            for (int i = 0; i < rows; i++) yv[i] = yv[i * stride];
            failed |= check(trans ? (stride == 1 ? "cblas_dgemv T" : "cblas_dgemv T, strided")
                                  : (stride == 1 ? "cblas_dgemv N" : "cblas_dgemv N, strided"),
                            yv, want, rows);
        }
    }

    /* solve L X = C for a unit lower-triangular L built from a */
    int s = 40;
    double *l = calloc((size_t)s * s, sizeof(double)), *x = malloc(sizeof(double) * s * n);
    double *rhs = malloc(sizeof(double) * s * n);
    for (int j = 0; j < s; j++)
        for (int i = j + 1; i < s; i++) l[i + j * s] = a[(i + j * s) % (m * k)];
    for (int i = 0; i < s * n; i++) x[i] = rnd(&seed);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < s; i++) {
            double v = x[i + j * s];
            for (int p = 0; p < i; p++) v += l[i + p * s] * x[p + j * s];
            rhs[i + j * s] = v;
        }
    dtrsm_("L", "L", "N", "U", &s, &n, &one, l, &s, rhs, &s);
    failed |= check("dtrsm_ (f2c interface)", rhs, x, s * n);

    /* LU: solve M x = rhs for a diagonally dominant M, check the residual */
    int q = 150, info = -1, nrhs = 1;
    double *mat = malloc(sizeof(double) * q * q), *lu = malloc(sizeof(double) * q * q);
    double *sol = malloc(sizeof(double) * q), *want = malloc(sizeof(double) * q);
    int *piv = malloc(sizeof(int) * q);
    for (int i = 0; i < q * q; i++) mat[i] = rnd(&seed);
    for (int i = 0; i < q; i++) { mat[i + i * q] += q; want[i] = rnd(&seed); }
    for (int i = 0; i < q; i++) {
        double v = 0;
        for (int p = 0; p < q; p++) v += mat[i + p * q] * want[p];
        sol[i] = v;
    }
    for (int i = 0; i < q * q; i++) lu[i] = mat[i];
    dgetrf_(&q, &q, lu, &q, piv, &info);
    failed |= info != 0;
    dgetrs_("N", &q, &nrhs, lu, &q, piv, sol, &q, &info);
    failed |= info != 0;
    failed |= check("dgetrf_ + dgetrs_ (solve)", sol, want, q);

    /* Cholesky of S = M^T M: L L^T must give S back */
    double *spd = malloc(sizeof(double) * q * q), *back = calloc((size_t)q * q, sizeof(double));
    for (int j = 0; j < q; j++)
        for (int i = 0; i < q; i++) {
            double v = 0;
            for (int p = 0; p < q; p++) v += mat[p + i * q] * mat[p + j * q];
            spd[i + j * q] = v;
        }
    for (int i = 0; i < q * q; i++) lu[i] = spd[i];
    dpotrf_("L", &q, lu, &q, &info);
    failed |= info != 0;
    for (int j = 0; j < q; j++)
        for (int i = j; i < q; i++) {
            double v = 0;
            for (int p = 0; p <= j; p++) v += lu[i + p * q] * lu[j + p * q];
            back[i + j * q] = v;
        }
    double worst = 0;
    for (int j = 0; j < q; j++)
        for (int i = j; i < q; i++) worst = fmax(worst, fabs(back[i + j * q] - spd[i + j * q]) / spd[i + i * q]);
    printf("dpotrf_: max relative error %.3g\n", worst);
    failed |= worst > 1e-12;

    float fx[5] = {1, 2, 3, 4, 5}, fy[5] = {5, 4, 3, 2, 1};
    int five = 5, inc = 1;
    double sd = sdot_(&five, fx, &inc, fy, &inc);
    printf("sdot_ = %g\n", sd);
    failed |= sd != 35.0;

    dcomplex zx[2] = {{1, 2}, {3, -1}}, zy[2] = {{2, 1}, {0, 4}}, zr = {0, 0};
    int two = 2;
    zdotc_(&zr, &two, zx, &inc, zy, &inc);
    /* conj(1+2i)(2+i) + conj(3-i)(4i) = (4-3i) + (-4+12i) = 0+9i */
    printf("zdotc_ = %g%+gi\n", zr.r, zr.i);
    failed |= zr.r != 0.0 || zr.i != 9.0;

    int big = 500;
    double *ba = malloc(sizeof(double) * big * big), *bb = malloc(sizeof(double) * big * big);
    double *bc = malloc(sizeof(double) * big * big);
    for (int i = 0; i < big * big; i++) { ba[i] = rnd(&seed); bb[i] = rnd(&seed); }
    double t0 = now();
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, big, big, big, 1.0, ba, big, bb, big, 0.0, bc, big);
    double t1 = now();
    printf("dgemm 500x500: %.1f ms (%.2f GFLOP/s)\n", (t1 - t0) * 1e3, 2.0 * big * big * big / (t1 - t0) / 1e9);

    if (failed) {
        printf("openblas FAILED\n");
        return 1;
    }
    printf("openblas ok:%s\n", OPENBLAS_VERSION);
    return 0;
}
