# The exception tags clang's wasm lowering throws and catches; objects only reference them,
# and Debian's compiler-rt builtins define neither (built without exception handling). One
# definition per program: both live in libc.a, pulled in by the first object that uses one.
# Payload: one i32, a pointer (C: the jump record; C++: the exception object).
	.globl	__c_longjmp
	.tagtype	__c_longjmp i32
__c_longjmp:

	.globl	__cpp_exception
	.tagtype	__cpp_exception i32
__cpp_exception:
